"""The CLI path a print shop and a courier walk: seal, render, rasterise, verify; and refusals."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from custody.cli import main
from custody.demo import Season
from custody.errors import CustodyError, FormatError, NotFoundError, ThresholdError
from custody.events import Kind
from custody.package_service import label_text
from labels.payload import seal_manifest, unwrap_text, wrap_text
from tests.conftest import PASS, T0
from tests.custody.test_log import transfer
from tests.labels.fixtures import typical_manifest

NOW = "2027-03-01T08:00:00Z"
SEAL_ARGS = [
    "--exam", "SX-2027-INT", "--session", "AM", "--position", "P014", "--paper", "P014-A",
    "--commitment", "ab" * 32, "--copies", "30", "--bag-size", "10",
    "--seal", "S0012345", "--seal", "S0012346", "--seal", "S0012347",
    "--site", "西安市第一考点", "--room", "第3考场",
    "--opens", "2027-03-06T08:00:00Z", "--closes", "2027-03-06T09:00:00Z",
    "--route", "print-qian@PRT-01", "--route", "courier-sun@ROAD",
    "--route", "custodian-zhou@XA-01",
]  # fmt: skip
SERIALS = ["S0012345", "S0012346", "S0012347"]


@pytest.fixture(autouse=True)
def _passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUSTODY_PASSPHRASE", PASS)


def keyfile(season: Season, subject: str) -> Path:
    (path,) = season.home.people_dir().glob(f"{subject}-*.key")
    return path


def run(season: Season, *args: str, now: str = NOW) -> tuple[int, str]:
    """Run the CLI in-process with --json; returns (exit code, stdout)."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["--home", str(season.home.path), "--json", "--now", now, *args])
    return code, out.getvalue()


def seal(season: Season, package: str, who: str = "print-qian") -> tuple[int, str]:
    return run(
        season, "package", "seal", "--key", str(keyfile(season, who)), "--package", package,
        *SEAL_ARGS,
    )  # fmt: skip


def test_seal_render_pdf_rasterise_verify(season: Season, tmp_path: Path) -> None:
    code, out = seal(season, "SX27-INT-0001")
    assert code == 0, out
    sealed = json.loads(out)
    assert sealed["sealed_by"]["subject"] == "print-qian"
    assert sealed["manifest"]["seal_serials"] == ["S0012345", "S0012346", "S0012347"]
    assert sealed["qr"]["version"] <= 17
    assert seal(season, "SX27-INT-0002")[0] == 0

    pdf = tmp_path / "labels.pdf"
    code, out = run(season, "label", "render", "--format", "pdf", "--out", str(pdf))
    assert code == 0, out
    assert json.loads(out)["labels"] == 2
    subprocess.run(["pdftoppm", "-r", "150", "-png", str(pdf), str(tmp_path / "p")], check=True)
    (page,) = tmp_path.glob("p-*.png")

    from PIL import Image

    image = Image.open(page)
    w, h = image.size
    first = tmp_path / "first.png"
    image.crop((0, 0, w // 2, h // 5)).save(first)
    bundle = season.out / "trust-bundle"
    code, out = run(season, "label", "verify", str(first), "--trust", str(bundle))
    assert code == 0, out
    report = json.loads(out)
    assert report["ok"] is True
    assert report["manifest"]["package_id"] == "SX27-INT-0001"
    assert report["manifest"]["destination"] == {"site": "西安市第一考点", "room": "第3考场"}
    assert report["sealed_by"]["key_id"] == season.keys["print-qian"].signing.key_id


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_render_png_and_svg_files(season: Season, tmp_path: Path, fmt: str) -> None:
    assert seal(season, "SX27-INT-0001")[0] == 0
    code, out = run(
        season, "label", "render", "SX27-INT-0001", "--format", fmt, "--out", str(tmp_path)
    )
    assert code == 0, out
    assert (tmp_path / f"SX27-INT-0001.{fmt}").stat().st_size > 1000


def test_verify_accepts_label_text_and_text_file(season: Season, tmp_path: Path) -> None:
    text = seal_manifest(typical_manifest(T0), season.keys["prop-zhao"].signing)
    bundle = str(season.out / "trust-bundle")
    assert run(season, "label", "verify", text, "--trust", bundle)[0] == 0
    path = tmp_path / "label.txt"
    path.write_text(text + "\n")
    assert run(season, "label", "verify", str(path), "--trust", bundle)[0] == 0


def _tampered(season: Season) -> str:
    cose, _ = unwrap_text(seal_manifest(typical_manifest(T0), season.keys["print-qian"].signing))
    return wrap_text(cose.replace("第3考场".encode(), "第9考场".encode()))


@pytest.mark.parametrize(
    ("make", "error", "exit_code", "now"),
    [
        pytest.param(_tampered, "signature", 10, NOW, id="tampered label"),
        pytest.param(
            lambda s: seal_manifest(typical_manifest(T0), s.keys["courier-sun"].signing),
            "role", 10, NOW, id="courier seal",
        ),
        pytest.param(
            lambda s: seal_manifest(typical_manifest(T0), s.keys["print-qian"].signing),
            "expired", 10, "2027-05-01T00:00:00Z", id="expired manifest",
        ),
        pytest.param(lambda s: "CP1:%%%", "format", 3, NOW, id="bad base45"),
        pytest.param(lambda s: "no-such-file.png", "not_found", 4, NOW, id="missing file"),
    ],
)  # fmt: skip
def test_verify_refusals(
    season: Season, make: object, error: str, exit_code: int, now: str
) -> None:
    assert callable(make)
    code, out = run(
        season, "label", "verify", make(season), "--trust", str(season.out / "trust-bundle"),
        now=now,
    )  # fmt: skip
    assert code == exit_code
    body = json.loads(out)
    assert body["ok"] is False
    assert body["error"] == error


def test_seal_refusals_store_nothing(season: Season) -> None:
    code, out = seal(season, "SX27-INT-0009", who="courier-sun")
    assert code == 10
    assert json.loads(out)["error"] == "role"
    assert run(season, "label", "render", "SX27-INT-0009", "--out", "x.pdf")[0] == 4

    assert seal(season, "SX27-INT-0001")[0] == 0
    before = label_text(season.home, "SX27-INT-0001")
    code, out = seal(season, "SX27-INT-0001")
    assert code == 5
    assert json.loads(out)["error"] == "conflict"
    assert label_text(season.home, "SX27-INT-0001") == before


def test_seal_refuses_inconsistent_seals_as_usage(season: Season) -> None:
    args = [a if a != "S0012347" else "S0012346" for a in SEAL_ARGS]  # a duplicate serial
    code, out = run(
        season, "package", "seal", "--key", str(keyfile(season, "print-qian")),
        "--package", "SX27-INT-0003", *args,
    )  # fmt: skip
    assert code == 3
    assert json.loads(out)["error"] == "format"


def write_exams(season: Season, exams: object) -> None:
    """The authority edits its exams.json by hand (the season wrote the demo exam's)."""
    (season.home.path / "exams.json").write_text(json.dumps(exams))


RETAIN = "2028-03-01T00:00:00Z"


@pytest.mark.parametrize("witness", [True, False])
def test_seal_takes_the_handover_witness_from_the_exam_policy(
    season: Season, witness: bool
) -> None:
    write_exams(
        season, {"exams": {"SX-2027-INT": {"handover_witness": witness, "retention_until": RETAIN}}}
    )
    code, out = seal(season, "SX27-INT-0001")
    assert code == 0, out
    assert json.loads(out)["handover_witness"] is witness
    assert season.log().package_state("SX27-INT-0001").handover_witness is witness
    # The chain follows the policy: with it, a dispatch needs the supervising witness too.
    dispatch = ("print-qian", "courier-sun")
    if witness:
        with pytest.raises(ThresholdError):  # the witness slot unnamed: a missing signer
            transfer(season, Kind.DISPATCH, "SX27-INT-0001", *dispatch, seals=SERIALS)
        transfer(
            season, Kind.DISPATCH, "SX27-INT-0001", *dispatch, seals=SERIALS,
            witness="supervisor-wang",
        )  # fmt: skip
    else:
        transfer(season, Kind.DISPATCH, "SX27-INT-0001", *dispatch, seals=SERIALS)
    assert season.log().package_state("SX27-INT-0001").holder == "courier-sun"


@pytest.mark.parametrize(
    ("exams", "error"),
    [
        pytest.param(None, NotFoundError, id="no exams.json"),
        pytest.param(
            {"exams": {"SX-2026-INT": {"handover_witness": True, "retention_until": RETAIN}}},
            NotFoundError,
            id="exam not in the file",
        ),
        pytest.param({"exams": {"SX-2027-INT": {"retention_until": RETAIN}}}, FormatError,
                     id="no handover_witness"),
        pytest.param(
            {"exams": {"SX-2027-INT": {"handover_witness": "yes", "retention_until": RETAIN}}},
            FormatError,
            id="handover_witness not a bool",
        ),
        pytest.param(
            {"exams": {"SX-2027-INT": {"handover_witnes": True, "handover_witness": False,
                                       "retention_until": RETAIN}}},
            FormatError,
            id="unknown field",
        ),
    ],
)  # fmt: skip
def test_seal_without_a_policy_stores_nothing(
    season: Season, exams: object, error: type[CustodyError]
) -> None:
    size = season.log().size()  # the season's own exam policy statement
    if exams is None:
        (season.home.path / "exams.json").unlink()
    else:
        write_exams(season, exams)
    code, out = seal(season, "SX27-INT-0001")
    assert code == error.exit_code
    assert json.loads(out)["error"] == error.code
    assert run(season, "label", "render", "SX27-INT-0001", "--out", "x.pdf")[0] == 4
    assert season.log().size() == size
