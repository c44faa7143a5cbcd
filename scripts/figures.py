"""Make the docs' figures from real runs: a sample grid (or text sample) and loss curves,
each with its provenance (the command and the genzoo commit) beside it.

    python scripts/figures.py RUN NAME      # writes docs/assets/NAME-samples.png,
                                            # NAME-loss.png and NAME.json, and
                                            # NAME-quality.png where the run has a
                                            # quality.jsonl (genzoo.quality:SampleQuality)

Uses only Pillow, so it runs wherever genzoo does.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "docs" / "assets"
SIZE = (640, 360)
MARGIN = 48


def _events(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def loss_curve(run: Path, out: Path, metric: str = "loss") -> None:
    """Training (grey) and validation (blue) curves of ``metric`` against the step."""
    from PIL import Image, ImageDraw

    events = _events(run)
    train = [(e["step"], e[metric]) for e in events if e["event"] == "train" and metric in e]
    val = [(e["step"], e[f"val_{metric}"]) for e in events
           if e["event"] == "eval" and f"val_{metric}" in e]
    points = train + val
    if not points:
        raise SystemExit(f"{run} logged no '{metric}'")
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1, y0, y1 = 0, max(xs), min(ys), max(ys)
    y1 = y0 + max(y1 - y0, 1e-9)
    img = Image.new("RGB", SIZE, "white")
    draw = ImageDraw.Draw(img)
    w, h = SIZE[0] - 2 * MARGIN, SIZE[1] - 2 * MARGIN

    def xy(step: float, value: float) -> tuple[float, float]:
        return MARGIN + w * (step - x0) / max(x1 - x0, 1), MARGIN + h * (1 - (value - y0) / (y1 - y0))

    draw.rectangle([MARGIN, MARGIN, MARGIN + w, MARGIN + h], outline="black")
    for series, colour in ((train, (150, 150, 150)), (val, (30, 90, 200))):
        if len(series) > 1:
            draw.line([xy(s, v) for s, v in series], fill=colour, width=2)
    draw.text((MARGIN, 10), f"{metric}: training (grey), validation (blue)", fill="black")
    draw.text((MARGIN, MARGIN + h + 8), f"step 0 .. {x1}", fill="black")
    draw.text((4, MARGIN), f"{y1:.3g}", fill="black")
    draw.text((4, MARGIN + h - 10), f"{y0:.3g}", fill="black")
    img.save(out)


QUALITY = (("fd", "Frechet distance (log)", True), ("is", "Inception-style score", False),
           ("precision", "precision", False), ("recall", "recall", False))


def quality_curves(run: Path, out: Path) -> None:
    """The SampleQuality scores against minutes of training, a panel per metric."""
    import math

    from PIL import Image, ImageDraw

    lines = [json.loads(t) for t in (run / "quality.jsonl").read_text().splitlines() if t]
    minutes = [r["train_s"] / 60 for r in lines]
    img = Image.new("RGB", (SIZE[0], 2 * SIZE[1]), "white")
    draw = ImageDraw.Draw(img)
    pw, ph = SIZE[0] // 2, SIZE[1]
    for i, (key, title, log) in enumerate(QUALITY):
        left, top = (i % 2) * pw, (i // 2) * ph
        box = (left + MARGIN, top + MARGIN, left + pw - 16, top + ph - MARGIN)
        values = [r[key] for r in lines]
        f = (lambda v: math.log10(max(v, 1e-9))) if log else (lambda v: v)
        lo, hi = min(map(f, values)), max(map(f, values))
        if not log and key != "is":
            lo, hi = 0.0, 1.0
        hi = lo + max(hi - lo, 1e-9)
        x1 = max(minutes[-1], 1e-9)

        def xy(m: float, v: float) -> tuple[float, float]:
            return (box[0] + (box[2] - box[0]) * m / x1,
                    box[3] - (box[3] - box[1]) * (f(v) - lo) / (hi - lo))

        draw.rectangle(box, outline="black")
        points = [xy(m, v) for m, v in zip(minutes, values)]
        if len(points) > 1:
            draw.line(points, fill=(30, 90, 200), width=2)
        for x, y in points:
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=(30, 90, 200))
        shown = (lambda t: f"{10 ** t:.3g}") if log else (lambda t: f"{t:.3g}")
        draw.text((box[0], top + 12), title, fill="black")
        draw.text((box[0], box[3] + 6), f"0 .. {x1:.1f} min of training", fill="black")
        draw.text((left + 4, box[1]), shown(hi), fill="black")
        draw.text((left + 4, box[3] - 10), shown(lo), fill="black")
    img.save(out)


def provenance(run: Path) -> dict:
    config = json.loads((run / "config.json").read_text())
    meta = json.loads((run / "meta.json").read_text())
    train = config["train_config"]
    length = f"--steps {train['steps']}" if train.get("steps") else f"--epochs {train['epochs']}"
    command = (f"genzoo train {config['model']} --backend {config['backend']} --preset "
               f"{config['preset']} --data {config['dataset']} {length} --seed {train['seed']}")
    commit = meta.get("genzoo_commit") or "not recorded by this run"
    return {"command": command, "commit": commit, "metrics": meta.get("metrics", {}),
            "frameworks": meta.get("frameworks", {}), "wall_time_s": meta.get("wall_time_s")}


def main(run: str, name: str) -> None:
    run_dir = Path(run)
    ASSETS.mkdir(parents=True, exist_ok=True)
    if (run_dir / "samples.png").is_file():
        shutil.copyfile(run_dir / "samples.png", ASSETS / f"{name}-samples.png")
    if (run_dir / "samples.txt").is_file():
        shutil.copyfile(run_dir / "samples.txt", ASSETS / f"{name}-samples.txt")
    metric = "loss_d" if any("loss_d" in e for e in _events(run_dir)) else "loss"
    loss_curve(run_dir, ASSETS / f"{name}-loss.png", metric)
    if (run_dir / "quality.jsonl").is_file():
        quality_curves(run_dir, ASSETS / f"{name}-quality.png")
    (ASSETS / f"{name}.json").write_text(json.dumps(provenance(run_dir), indent=2) + "\n")
    print(f"wrote docs/assets/{name}-*")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
