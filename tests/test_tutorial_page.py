"""docs/tutorial.md: every block runs (at a small size), and the page shows what its blocks printed."""

import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _builder():
    return runpy.run_path(str(ROOT / "examples" / "tutorial_page.py"), run_name="tutorial_page")


def test_every_block_of_the_tutorial_page_runs(monkeypatch, capsys):
    monkeypatch.setenv("VAEKIT_TUTORIAL_SIZE", "0.01")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    before = (ROOT / "docs" / "tutorial.md").read_text()
    assert _builder()["main"](["--check"]) == 0
    assert "every block ran" in capsys.readouterr().out
    assert (ROOT / "docs" / "tutorial.md").read_text() == before  # --check writes nothing


def test_the_page_holds_the_output_of_every_block():
    page = _builder()
    text = (ROOT / "docs" / "tutorial.md").read_text()
    found = page["blocks"](text)
    assert sum(lang == "python" for lang, _, _ in found) >= 10 and any(lang == "bash" for lang, _, _ in found)
    outputs = [m.group(3) for _, _, m in found if m.group(3) is not None]
    assert outputs and all(out.strip() for out in outputs), "run python examples/tutorial_page.py to fill the page"
    assert "COMPARISON_TABLE" not in text and "<!-- comparison -->" in text
    for image in ("tutorial-kl-normals.png", "tutorial-latent-space.png", "tutorial-vae.gif",
                  "tutorial-loss-vs-elbo.png"):
        assert f"images/{image}" in text and (ROOT / "docs" / "images" / image).is_file()
