"""A QAT job run as a real subprocess by the resume test: trains digits_cnn and saves the final model."""

import json
import sys
from pathlib import Path

from hapfpga.data import load_digits
from hapfpga.runconfig import ModelConfig, TrainConfig
from hapfpga.train import train
from hapfpga.zoo import build_model, save_model

if __name__ == "__main__":
    run_dir, epochs = Path(sys.argv[1]), int(sys.argv[2])
    ds = load_digits()
    model = build_model(ModelConfig(), ds.input_shape, ds.num_classes, seed=3)
    res = train(model, ds, TrainConfig(epochs=epochs, lr=0.01, device="cpu"), seed=3, run_dir=run_dir,
                progress=False)
    save_model(model, run_dir / "final.pt")
    (run_dir / "result.json").write_text(json.dumps({"resumed_epoch": res.resumed_epoch,
                                                     "accuracy": res.accuracy}))
