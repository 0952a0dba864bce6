"""Every user-facing surface answers bad input with one clear line and keeps what it computed.

Each case runs `python -m lift3d.cli` or `python -m experiments.main` as a
subprocess, exactly as a user would (the failing ones concurrently, to keep the
file fast), and asserts: the exit status, exactly one line on stderr naming the
problem (absl's INFO progress lines aside, for the launcher), no "Traceback",
and that a lift which had finished left its `.npz` behind.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import jax.numpy as jnp
import numpy as np
import pytest

from lift3d import cli, pose_model
from lift3d.pose_model.model import PoseModel

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
           JAX_PLATFORMS="cpu")
K, J, L = 2, 3, 17
_INFO_LINE = re.compile(r"^I\d{4} ")  # absl INFO lines (the launcher's progress)


def _model() -> PoseModel:
  """A small random pose model (lifting needs no fit to be exercised)."""
  rng = np.random.default_rng(0)
  mean = rng.normal(size=(K, L, 3)) * 0.25
  mean -= mean.mean(axis=1, keepdims=True)
  basis = np.stack([np.linalg.qr(rng.normal(size=(3 * L, J)))[0].T.reshape(J, L, 3)
                    for _ in range(K)])
  return PoseModel(mean=jnp.asarray(mean, jnp.float32), basis=jnp.asarray(basis, jnp.float32),
                   variances=jnp.full((K, J), 0.005, jnp.float32),
                   noise=jnp.full((K,), 1e-4, jnp.float32),
                   weights=jnp.full((K,), 0.5, jnp.float32),
                   limb_scale=jnp.asarray(0.5, jnp.float32))


# `python -m MODULE ARGS`, except that Ctrl-C raises KeyboardInterrupt even when this test
# runs as a background job (whose children inherit an ignored SIGINT).
_INTERRUPTIBLE = ("import runpy, signal, sys; signal.signal(signal.SIGINT, "
                  "signal.default_int_handler); sys.argv = sys.argv[1:]; "
                  "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)")


def _start(args, cwd=REPO, *, interruptible: bool = False) -> subprocess.Popen:
  """Starts `python -m args[0] args[1:]` with stdout and stderr piped."""
  command = ["-c", _INTERRUPTIBLE] if interruptible else ["-m"]
  return subprocess.Popen([sys.executable, *command, *args], cwd=cwd, env=ENV, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _problem_lines(stderr: str) -> list[str]:
  return [line for line in stderr.splitlines() if line.strip() and not _INFO_LINE.match(line)]


def _assert_one_line(stderr: str, prefix: str, *needles: str) -> str:
  assert "Traceback" not in stderr, stderr
  lines = _problem_lines(stderr)
  assert len(lines) == 1, stderr
  assert lines[0].startswith(prefix), lines[0]
  for needle in needles:
    assert needle in lines[0], (needle, lines[0])
  return lines[0]


# ---------------------------------------------------------------------------------------------
# lift3d lift


@pytest.fixture(scope="module")
def lift_files(tmp_path_factory):
  """A model, good keypoints and every bad input, in one folder."""
  root = tmp_path_factory.mktemp("lift")
  pose_model.save(root / "model.npz", _model())
  rng = np.random.default_rng(1)
  np.save(root / "good.npy", (rng.normal(size=(3, L, 2)) * 50 + 300).astype(np.float32))
  (root / "empty.npy").write_bytes(b"")
  (root / "text.npy").write_text("1 2 3\n4 5 6\n")
  (root / "exists.npz").write_bytes(b"precious")
  hidden = np.zeros((4, L, 3), np.float32)  # every joint has confidence 0
  hidden[..., :2] = rng.normal(size=(4, L, 2)) * 50 + 300
  np.save(root / "hidden.npy", hidden)
  return root


_LIFT_CASES = {
    # name: (input, model, --out, more args, exit status, words the error line must hold,
    #        whether the lift finished and its .npz must exist)
    "empty_npy": ("empty.npy", "model.npz", "o1.npz", [], 2, ["empty.npy", "is empty"], False),
    "text_npy": ("text.npy", "model.npz", "o2.npz", [], 2,
                 ["not a NumPy .npy file", "numpy.save"], False),
    "plot_folder_missing": ("good.npy", "model.npz", "o3.npz", ["--plot", "no/where/s.png"], 2,
                            ["--plot folder", "does not exist"], False),
    "out_exists": ("good.npy", "model.npz", "exists.npz", [], 2, ["exists", "--overwrite"],
                   False),
    "all_invalid_with_plot": ("hidden.npy", "model.npz", "o5.npz", ["--plot", "sheet.png"], 1,
                              ["no frame could be lifted", "nothing to plot"], True),
    "missing_model": ("good.npy", "nope.npz", "o6.npz", [], 2, ["nope.npz", "does not exist"],
                      False),
    "unknown_layout": ("good.npy", "model.npz", "o7.npz", ["--layout", "nope"], 2,
                       ["invalid choice: 'nope'", "--help"], False),
}


@pytest.fixture(scope="module")
def lift_runs(lift_files):
  """Runs every `_LIFT_CASES` entry concurrently; {name: (returncode, stdout, stderr)}."""
  procs = {}
  for name, (source, model, out, extra, *_) in _LIFT_CASES.items():
    procs[name] = _start(["lift3d.cli", "lift", source, "--model", model, "--layout", "h36m17",
                          "--out", out, "--num-yaws", "8", *extra], cwd=lift_files)
  return {name: (p.wait(timeout=600), *p.communicate()) for name, p in procs.items()}


@pytest.mark.parametrize("case", sorted(_LIFT_CASES))
def test_lift_cli_bad_input_is_one_line(case, lift_runs, lift_files):
  _, _, out, _, status, needles, finished = _LIFT_CASES[case]
  code, _, stderr = lift_runs[case]
  assert code == status, stderr
  _assert_one_line(stderr, "lift3d: error:", *needles)
  if finished:  # the lift had finished: its results are on disk
    with np.load(lift_files / out) as data:
      assert data["pose3d"].shape == (4, L, 3) and not data["valid"].any()
  elif case != "out_exists":
    assert not os.path.exists(lift_files / out)
  assert (lift_files / "exists.npz").read_bytes() == b"precious"  # never overwritten
  assert not os.path.exists(lift_files / "sheet.png")


def _lift(tmp_path, *args) -> int:
  pose_model.save(tmp_path / "model.npz", _model())
  np.save(tmp_path / "kp.npy", (np.random.default_rng(2).normal(size=(2, L, 2)) * 50 + 300))
  return cli.main(["lift", str(tmp_path / "kp.npy"), "--model", str(tmp_path / "model.npz"),
                   "--layout", "h36m17", "--num-yaws", "8", *args])


def test_out_without_extension_is_written_and_printed_as_given(tmp_path, capsys):
  out = tmp_path / "noext"
  assert _lift(tmp_path, "--out", str(out)) == 0
  assert f"-> {out}\n" in capsys.readouterr().out
  assert not os.path.exists(f"{out}.npz")
  with np.load(out) as data:  # a .npz archive at exactly that path
    assert data["pose3d"].shape == (2, L, 3)


def test_out_folder_gets_the_documented_default_name(tmp_path, capsys):
  folder = tmp_path / "results"
  folder.mkdir()
  assert _lift(tmp_path, "--out", str(folder)) == 0
  written = folder / "kp_lifted.npz"
  assert f"-> {written}\n" in capsys.readouterr().out
  with np.load(written) as data:
    assert data["valid"].shape == (2,)
  # The second time it exists: refused, unless --overwrite / -f.
  assert _lift(tmp_path, "--out", str(folder)) == 2
  assert "--overwrite" in capsys.readouterr().err
  before = written.stat().st_mtime_ns
  time.sleep(0.01)
  assert _lift(tmp_path, "--out", str(folder), "-f") == 0
  assert written.stat().st_mtime_ns > before


def test_readme_example_line_runs_as_written(tmp_path):
  with open(os.path.join(REPO, "README.md")) as f:
    lines = [m.group(1) for m in re.finditer(r"`(lift3d lift [^`]+)`", f.read())]
  assert len(lines) == 1, lines
  args = lines[0].split()
  # As written, from a checkout holding the main job's model (a small stand-in here).
  model = tmp_path / args[args.index("--model") + 1]
  model.parent.mkdir(parents=True)
  pose_model.save(model, _model())
  shutil.copytree(os.path.join(REPO, "docs", "examples"), tmp_path / "docs" / "examples")
  proc = _start(["lift3d.cli", *args[1:]], cwd=tmp_path)
  stdout, stderr = proc.communicate(timeout=600)
  assert proc.returncode == 0, stderr
  assert "Traceback" not in stderr and not _problem_lines(stderr), stderr
  with np.load(tmp_path / args[args.index("--out") + 1]) as data:
    # Every frame is lifted; the stand-in model is not a fitted one, so plausibility
    # (`valid`, docs/method.md §4.5) is not asserted here.
    assert data["pose3d"].shape == (8, L, 3) and (data["component"] >= 0).all()
    np.testing.assert_array_equal(data["image_id"], np.arange(8))
    # Frame 6's left hip is unlabelled: it and the joints derived from it are hidden.
    hidden = np.flatnonzero(data["confidence"][6] == 0)
    assert {"Hip", "LHip", "Spine"} <= {_name(j) for j in hidden}
  assert (tmp_path / args[args.index("--plot") + 1]).stat().st_size > 50_000
  assert "contact sheet ->" in stdout


def _name(joint: int) -> str:
  from lift3d.skeleton import H36M17
  return H36M17.names[joint]


def test_example_file_is_what_its_script_makes_from_the_corpus():
  sys.path.insert(0, os.path.join(REPO, "docs", "examples"))
  try:
    import make_keypoints_coco17 as maker
  finally:
    sys.path.pop(0)
  with open(maker.PATH) as f:
    shipped = json.load(f)
  assert shipped == json.loads(json.dumps(maker.make_records()))
  # Mapped back to H36M17, the head is the corpus's (the ears were placed for that).
  from lift3d.data import mocap
  from lift3d.skeleton import H36M17, convert
  coco = np.array([r["keypoints"] for r in shipped], np.float64).reshape(8, 17, 3)
  back = convert(coco[..., :2], "coco17", np.clip(coco[..., 2], 0, 1))
  walk = mocap.load_embedded().clip_poses("humanoid3d_walk")
  frames = walk[np.linspace(0, len(walk) - 1, 8).astype(int)]
  head_height = frames[:, H36M17.index("Head"), 1] - frames[:, H36M17.index("Hip"), 1]
  pixels = back.keypoints[:, H36M17.index("Hip"), 1] - back.keypoints[:, H36M17.index("Head"), 1]
  seen = back.confidence[:, H36M17.index("Hip")] > 0
  assert seen.sum() == 7
  # 220 px per metre; the JSON keeps 0.1 px.
  np.testing.assert_allclose(pixels[seen], 220.0 * head_height[seen], atol=0.2)


# ---------------------------------------------------------------------------------------------
# python -m experiments.main

_DEFAULT = "--config=experiments/configs/default.py:smoke"
_LAUNCH_CASES = {
    # name: (arguments after `-m experiments.main`, words the error line must hold)
    "misspelled_override": ([_DEFAULT, "--config.pose_model.num_componets=2"],
                            ["num_componets", "did you mean 'num_components'"]),
    "unknown_config": (["--config=experiments/configs/nope.py"],
                       ["experiments/configs/nope.py", "No such file"]),
    "bad_variant": (["--config=experiments/configs/default.py:smok"], ["unknown variant"]),
    "bad_value": ([_DEFAULT, "--config.pose_model.num_components=two"], ["two"]),
    "workdir_is_a_file": ([_DEFAULT], ["is an existing file"]),
    "h36m_missing": (["--config=experiments/configs/h36m_protocol1.py:smoke",
                      "--config.data_dir={root}/no_h36m", "--config.h36m.tfds_dir={root}/tfds"],
                     ["Human3.6M was not found", "--config.data_dir"]),
    "no_workdir": ([_DEFAULT], ["--workdir is required"]),
}


@pytest.fixture(scope="module")
def launch_runs(tmp_path_factory):
  """Runs every `_LAUNCH_CASES` entry concurrently; {name: (returncode, stderr, workdir)}."""
  root = tmp_path_factory.mktemp("launch")
  (root / "a_file").write_text("not a folder")
  procs = {}
  for name, (args, _) in _LAUNCH_CASES.items():
    workdir = root / ("a_file" if name == "workdir_is_a_file" else name)
    args = [a.format(root=root) for a in args]
    if name != "no_workdir":
      args.append(f"--workdir={workdir}")
    procs[name] = (_start(["experiments.main", *args]), workdir)
  return {name: (p.wait(timeout=600), p.communicate()[1], workdir)
          for name, (p, workdir) in procs.items()}


@pytest.mark.parametrize("case", sorted(_LAUNCH_CASES))
def test_launcher_mistakes_are_one_line_and_leave_no_workdir(case, launch_runs):
  code, stderr, workdir = launch_runs[case]
  assert code == 2, stderr
  _assert_one_line(stderr, "experiments.main: error:", *_LAUNCH_CASES[case][1])
  if case == "workdir_is_a_file":
    assert workdir.read_text() == "not a folder"
  else:  # nothing was done, so nothing is left behind
    assert not workdir.exists(), sorted(os.listdir(workdir))


def _wait_for(proc, pattern: str, timeout: float = 600) -> list[str]:
  """Reads the child's stderr until a line matches `pattern`; returns the lines read."""
  lines, deadline = [], time.monotonic() + timeout
  while time.monotonic() < deadline:
    line = proc.stderr.readline()
    if not line:
      break
    lines.append(line)
    if re.search(pattern, line):
      return lines
  raise AssertionError(f"no line matching {pattern!r} in {lines}")


def test_ctrl_c_before_any_checkpoint_is_one_line_and_exit_130(tmp_path):
  workdir = tmp_path / "run"
  proc = _start(["experiments.main", "--config=experiments/configs/fit_pose_model.py:smoke",
                 f"--workdir={workdir}"], interruptible=True)
  seen = _wait_for(proc, r"job pose_model")  # the job has started
  proc.send_signal(signal.SIGINT)
  _, rest = proc.communicate(timeout=600)
  assert proc.returncode == 130, rest
  line = _assert_one_line("".join(seen) + rest, "experiments.main: interrupted")
  assert "rerun the same command" in line
  assert not workdir.exists()  # interrupted before writing anything


@pytest.mark.slow
def test_ctrl_c_during_training_resumes_to_the_same_numbers(tmp_path):
  """Interrupt the CPM's training, rerun: the metrics equal an uninterrupted run's."""
  model = _model()
  args = ["--config=experiments/configs/cpm_synthetic.py:smoke", "--config.cpm.train.num_steps=8",
          "--config.cpm.train.log_every=1", "--config.cpm.train.ckpt_every=2",
          "--config.cpm.eval.num_examples=4"]
  runs = {}
  for name in ("whole", "interrupted"):
    workdir = tmp_path / name
    workdir.mkdir()
    pose_model.save(workdir / "pose_model.npz", model)  # skip the fit: the CPM is what runs
    runs[name] = workdir
  whole = _start(["experiments.main", *args, f"--workdir={runs['whole']}"])
  assert whole.wait(timeout=1200) == 0, whole.communicate()[1][-3000:]
  proc = _start(["experiments.main", *args, f"--workdir={runs['interrupted']}"],
                interruptible=True)
  metrics = runs["interrupted"] / "metrics.jsonl"
  deadline = time.monotonic() + 1200
  while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 3):
    assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
    time.sleep(0.2)
  proc.send_signal(signal.SIGINT)
  _, stderr = proc.communicate(timeout=600)
  assert proc.returncode == 130, stderr[-3000:]
  line = _assert_one_line(stderr, "experiments.main: interrupted at step")
  assert int(re.search(r"step (\d+)", line).group(1)) >= 3
  again = _start(["experiments.main", *args, f"--workdir={runs['interrupted']}"])
  assert again.wait(timeout=1200) == 0, again.communicate()[1][-3000:]
  logs = {}
  for name, workdir in runs.items():
    with open(workdir / "metrics.jsonl") as f:
      logs[name] = [json.loads(line) for line in f]
  assert [r["step"] for r in logs["interrupted"]] == list(range(1, 9))  # no duplicate rows
  assert [r["loss"] for r in logs["interrupted"]] == [r["loss"] for r in logs["whole"]]
  with open(runs["whole"] / "cpm_eval.json") as f, open(runs["interrupted"] / "cpm_eval.json") as g:
    assert json.load(f) == json.load(g)


def test_only_human36m_pose_data_errors_get_the_human36m_hint():
  from experiments.user_errors import user_error_line
  from lift3d.data.h36m.sources import ManualDirError, expected_files_message

  h36m = user_error_line(ManualDirError(expected_files_message("/data/h36m")))
  assert "data_3d_h36m.npz" in h36m and "\n" not in h36m
  # COCO, MPII and the image layout raise the same class with their own text.
  coco = user_error_line(ManualDirError("COCO was not found in '/data/coco'.\n"
                                        "Put annotations/ and train2017/ there."))
  assert coco == "COCO was not found in '/data/coco'. Put annotations/ and train2017/ there."


def test_atomic_writes_keep_the_old_file_when_writing_fails(tmp_path):
  from lift3d import files

  path = str(tmp_path / "summary.json")
  files.write_json(path, {"a": 1})
  with open(path) as f:
    assert json.load(f) == {"a": 1}

  def fail(f):
    f.write(b'{"half": ')
    raise KeyboardInterrupt

  with pytest.raises(KeyboardInterrupt):
    files.write_atomically(path, fail)
  with open(path) as f:
    assert json.load(f) == {"a": 1}  # untouched, and no temporary file left
  assert os.listdir(tmp_path) == ["summary.json"]
