r"""A small multi-process program for the tests of experiments/launch_local.py.

  python -m experiments.launch_local --num_processes=2 --devices_per_process=2 \
      --module=tests.experiments.distributed_worker -- --mode=train --workdir=/tmp/w

`--mode=train` trains the tiny CPM of tests/models/tiny.py with
`lift3d.train.train` (the multi-process path of experiments.main's CPM job at
a size the tests can afford) and process 0 writes the final parameters to
`<workdir>/params.npz`; `--mode=fail` makes process 1 raise while process 0
waits in a collective for it (a hung peer the launcher must stop);
`--mode=wait` joins the others, prints READY and sleeps (until Ctrl-C).
"""

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from lift3d import train
from tests.models import tiny

_MODE = flags.DEFINE_enum("mode", "train", ["train", "fail", "wait"], "What to do.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir.")
_SETTINGS = flags.DEFINE_string("settings", "{}", "JSON of lift3d.train.train keyword arguments.")
_FUSION = flags.DEFINE_bool("fusion", False, "The fused CPM (compiles the lifting: slower).")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False, "Join the other processes.")

# The planted failure's message (the launcher must report it).
PLANTED_ERROR = "planted failure in process 1"
NUM_EXAMPLES = 16
READY = "worker ready"


def main(argv):
  del argv
  train.initialize_distributed(_DISTRIBUTED.value)
  if _MODE.value == "wait":
    print(READY, flush=True)
    while True:
      time.sleep(0.1)
  if _MODE.value == "fail":
    if jax.process_index() == 1:
      raise ValueError(PLANTED_ERROR)
    # Waits for process 1 forever (it never joins): the launcher must stop us.
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices("never reached by process 1")
    return
  model = tiny.MODEL.clone(fusion=_FUSION.value)
  state = train.train(model, tiny.pose_model(), tiny.BlobSource(NUM_EXAMPLES), _WORKDIR.value,
                      **json.loads(_SETTINGS.value))
  params = jax.device_get(state.params)
  if jax.process_index() == 0:
    leaves = jax.tree.leaves(jax.tree.map(lambda x: np.asarray(x, jnp.float32), params))
    np.savez(os.path.join(_WORKDIR.value, "params.npz"), *leaves)


if __name__ == "__main__":
  app.run(main)
