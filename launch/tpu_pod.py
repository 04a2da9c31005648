r"""Run a dgsct_jax command on every worker of a Cloud TPU VM pod slice.

    python launch/tpu_pod.py --tpu=my-v4-32 --zone=us-central2-b [--project=P] \
        [--setup] [--dry_run] -- \
        -m dgsct_jax.main --config=configs/ave.py:variant=large \
        --workdir=gs://bucket/runs/ave --weights_dir=gs://bucket/converted --data_dir=gs://bucket/tfds

With --setup it first copies this repository's committed tree (git archive HEAD)
to every worker (~/dgsct_jax) and runs launch/setup_tpu_vm.sh there (venv + pinned jax[tpu] + the package). Then
it runs `python <args>` on all workers at once with DGSCT_DISTRIBUTED=1, which
makes dgsct_jax.main call jax.distributed.initialize() (on TPU VMs JAX finds the
coordinator and process ids itself). --dry_run prints the commands instead.
Every worker must see the same --workdir (a gs:// bucket): orbax writes one
checkpoint from all hosts, and a re-run with the same --workdir resumes.
"""
import argparse
import shlex
import subprocess
import sys

REMOTE_DIR = "~/dgsct_jax"
TARBALL = "/tmp/dgsct_jax_src.tar.gz"


def _where(args) -> list[str]:
  return [f"--zone={args.zone}", "--worker=all"] + (
      [f"--project={args.project}"] if args.project else [])


def commands(args, python_args: list[str]) -> list[list[str]]:
  """The gcloud commands, in order: [copy, install,] run."""
  base = ["gcloud", "compute", "tpus", "tpu-vm"]
  out = []
  if args.setup:
    out.append(["git", "-C", args.repo, "archive", "--format=tar.gz", f"--output={TARBALL}",
                "HEAD"])
    out.append(base + ["scp", TARBALL, f"{args.tpu}:~/dgsct_jax_src.tar.gz"] + _where(args))
    out.append(base + ["ssh", args.tpu] + _where(args) + [
        f"--command=mkdir -p {REMOTE_DIR} && tar -xzf ~/dgsct_jax_src.tar.gz -C {REMOTE_DIR} "
        f"&& cd {REMOTE_DIR} && bash launch/setup_tpu_vm.sh"])
  run = (f"cd {REMOTE_DIR} && DGSCT_DISTRIBUTED=1 .venv/bin/python "
         + " ".join(shlex.quote(a) for a in python_args))
  out.append(base + ["ssh", args.tpu] + _where(args) + [f"--command={run}"])
  return out


def parse(argv):
  if "--" not in argv:
    raise SystemExit("usage: tpu_pod.py --tpu=NAME --zone=ZONE [--setup] [--dry_run] -- "
                     "<python args, e.g. -m dgsct_jax.main --config=...>")
  split = argv.index("--")
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--tpu", required=True, help="TPU VM name")
  parser.add_argument("--zone", required=True)
  parser.add_argument("--project", default=None)
  parser.add_argument("--repo", default=".", help="local git checkout to copy with --setup")
  parser.add_argument("--setup", action="store_true", help="copy the repo and install first")
  parser.add_argument("--dry_run", action="store_true", help="print the commands only")
  args = parser.parse_args(argv[:split])
  python_args = argv[split + 1:]
  if not python_args:
    raise SystemExit("nothing to run after --")
  return args, python_args


def main(argv=None) -> int:
  args, python_args = parse(sys.argv[1:] if argv is None else argv)
  for cmd in commands(args, python_args):
    print(shlex.join(cmd), flush=True)
    if not args.dry_run:
      subprocess.run(cmd, check=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
