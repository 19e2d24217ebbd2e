"""Package labels: the QR payload codec (pure), QR rendering, sheets and scanning (edges)."""
