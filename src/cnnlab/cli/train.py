"""`cnnlab-train key=value ... [-m]`: one run (or a sweep) composed by Hydra."""

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf


@hydra.main(version_base=None, config_path="pkg://cnnlab.conf", config_name="config")
def main(cfg: DictConfig) -> float:
    from cnnlab.train import loop  # after Hydra has parsed the command line: --help stays fast

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    summary = loop.run(OmegaConf.to_container(cfg, resolve=True), run_dir)
    return summary["best_val_top1"]  # the value a Hydra sweeper would optimize


if __name__ == "__main__":
    main()
