"""docs/tutorial.md: every block runs (at a small size), and the page shows what its blocks printed."""

import math
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _builder():
    return runpy.run_path(str(ROOT / "examples" / "tutorial_page.py"), run_name="tutorial_page")


def test_every_block_of_the_tutorial_page_runs(monkeypatch, capsys):
    monkeypatch.setenv("VAEKIT_TUTORIAL_SIZE", "0.01")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    before = (ROOT / "docs" / "tutorial.md").read_text()
    page = _builder()
    assert page["main"](["--check"]) == 0
    assert "every block ran" in capsys.readouterr().out
    assert (ROOT / "docs" / "tutorial.md").read_text() == before  # --check writes nothing
    _the_quiz_answers_hold(page["main"].__globals__["RAN"]["namespace"])


def _the_quiz_answers_hold(ns):
    """The quiz section's results (examples/quiz.py at the page's small size), where their answer is known."""
    r1, r2, r3, r4 = ns["r1"], ns["r2"], ns["r3"], ns["r4"]
    assert 0 <= r1["generative_accuracy"] <= 1 and 0.3 < r1["discriminative_accuracy"] <= 1
    assert math.isfinite(r1["mean_log_px"]) and r1["mean_log_px"] < 0
    assert len(r2["rows"]) == 7 and all(math.isfinite(row["valid"]) and row["valid"] < 0 for row in r2["rows"])
    assert r3["elbo_best_q"] >= r3["elbo_encoder"] - 0.5  # optimised per image: no worse than the encoder's q
    total = r3["log_px"] - r3["elbo_encoder"]
    assert total == pytest.approx(r3["approximation_gap"] + r3["amortisation_gap"], abs=1e-4)
    for name in ("autoencoder", "VAE"):
        assert r4[name]["pixels_per_unit"] > 0 and 0 <= r4[name]["unnamed_share"] <= 1


def test_the_page_holds_the_output_of_every_block():
    page = _builder()
    text = (ROOT / "docs" / "tutorial.md").read_text()
    found = page["blocks"](text)
    assert sum(lang == "python" for lang, _, _ in found) >= 10 and any(lang == "bash" for lang, _, _ in found)
    outputs = [m.group(3) for _, _, m in found if m.group(3) is not None]
    assert outputs and all(out.strip() for out in outputs), "run python examples/tutorial_page.py to fill the page"
    assert "COMPARISON_TABLE" not in text and "<!-- comparison -->" in text
    for image in ("tutorial-kl-normals.png", "tutorial-latent-space.png", "tutorial-vae.gif",
                  "tutorial-loss-vs-elbo.png", "quiz-cvae-samples.png", "quiz-ae-vs-vae.png"):
        assert f"images/{image}" in text and (ROOT / "docs" / "images" / image).is_file()
