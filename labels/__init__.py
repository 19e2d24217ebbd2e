"""Package labels: the manifest value and the QR payload codec (pure), QR rendering, sheets and
scanning (edges).
"""
