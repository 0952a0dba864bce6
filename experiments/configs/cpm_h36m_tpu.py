r"""The paper's fused CPM sized for a TPU pod slice (issue 15).

  # every host of a v4-32 slice (4 hosts × 4 chips), from your machine; the
  # workdir is a file system mounted on every host (Filestore, NFS, gcsfuse):
  gcloud compute tpus tpu-vm ssh $TPU --zone=$ZONE --worker=all --command="cd lift3d && \
      python -m experiments.main --distributed \
      --config=experiments/configs/cpm_h36m_tpu.py --workdir=/mnt/shared/cpm_tpu"
  # another slice: change the pod shape, the batches follow
  ... --config.pod.num_hosts=8 --config.pod.per_chip_batch=4 ...
  # the same program on this machine: 2 processes × 2 CPU devices, tiny sizes
  python -m experiments.launch_local --num_processes=2 --devices_per_process=2 -- \
      --config=experiments/configs/cpm_h36m_tpu.py:smoke --workdir=runs/cpm_tpu_smoke

The network is the paper's (368×368 input, stride 8, 46×46 maps, 6 stages,
100 yaws; `parts.cpm.paper_model`), computed in bfloat16 with float32
parameters, optimiser state, lifting and loss. Sizes:
- `pod`: hosts (processes: TPU hosts, or one per GPU), chips (devices) per
  host, examples per chip;
- global batch `cpm.train.batch_size` = hosts × chips per host × per-chip batch
  (the batch of one optimiser step over the whole slice);
- per-host batch `pod.per_host_batch` = chips per host × per-chip batch: the
  rows each host reads and renders per step (`lift3d.train.batch_dataset`);
- data workers `cpm.train.num_threads`: grain threads per host producing
  examples, and `cpm.train.prefetch` batches read ahead.
Overriding a `pod` field recomputes both batches.

Data: the synthetic renders of the CPM job (experiments/jobs/cpm.py), at the
paper's input size. The Human3.6M image pipeline (issue 13) has its own
config; sizing it for a pod changes the same `train` fields as here.
"""

import ml_collections

from experiments.configs import cpm_synthetic
from experiments.configs.parts import cpm


def get_config(variant: str = "") -> ml_collections.ConfigDict:
  if variant not in ("", "smoke"):
    raise ValueError(f"unknown variant {variant!r}; expected '' or 'smoke'")
  smoke = variant == "smoke"
  config = cpm_synthetic.get_config(variant)
  # The slice: a v4-32 (4 hosts × 4 chips); smoke: 2 processes × 2 CPU devices.
  config.pod = ml_collections.ConfigDict(dict(
      num_hosts=2 if smoke else 4,
      chips_per_host=2 if smoke else 4,
      per_chip_batch=1 if smoke else 8,
  ))
  pod, section = config.pod, config.cpm
  config.pod.per_host_batch = pod.get_ref("chips_per_host") * pod.get_ref("per_chip_batch")
  section.train.batch_size = pod.get_ref("num_hosts") * pod.get_ref("per_host_batch")
  if not smoke:
    section.model = cpm.paper_model()
    section.image_size = 368
    section.train.update(dict(
        num_steps=100_000,
        learning_rate=1e-3,
        warmup_steps=1000,
        log_every=100,
        ckpt_every=1000,
        max_to_keep=3,
        num_threads=16,
        prefetch=8,
        time_limit_s=0.0,
    ))
    section.eval.update(dict(num_examples=1024, batch_size=64))
  section.train.dtype = "bfloat16"
  return config
