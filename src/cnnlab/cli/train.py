"""`cnnlab-train key=value ... [-m]`: one run (or a sweep) composed by Hydra."""

import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf


@hydra.main(version_base=None, config_path="pkg://cnnlab.conf", config_name="config")
def main(cfg: DictConfig) -> float:
    config = OmegaConf.to_container(cfg, resolve=True)
    simulate_cpu_devices(config["parallel"].get("cpu_devices"))
    from cnnlab.train import loop, vmap_sweep  # after Hydra has parsed the command line: --help stays fast

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    (run_dir / "error.txt").unlink(missing_ok=True)  # from an earlier attempt in this directory
    try:
        if (config.get("sweep") or {}).get("name") == "vmap":
            result = vmap_sweep.run(config, run_dir, overrides=list(HydraConfig.get().overrides.task))
            return max((s["best_val_top1"] for s in result.summaries), default=float("nan"))
        return loop.run(config, run_dir)["best_val_top1"]  # the value a Hydra sweeper would optimize
    except Exception:
        # The record cnnlab-report lists a failed multirun job by; Hydra runs the other jobs on.
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "error.txt").write_text(traceback.format_exc())
        raise


def simulate_cpu_devices(count: int | None) -> None:
    """`parallel.cpu_devices=N` (debug=imagenet: 8): split the CPU into N devices, as a pod's
    hosts would hold several. It must happen before JAX starts its backends."""
    if not count:
        return
    import jax

    if jax.config.jax_num_cpu_devices != count:
        jax.config.update("jax_num_cpu_devices", count)


if __name__ == "__main__":
    main()
