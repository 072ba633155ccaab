"""Run ``vaekit train ARGS...`` and SIGKILL this very process at one moment of its start-up.

    python tests/helpers/kill_at.py STAGE train ARGS...

STAGE is where the kill lands, in the order a run starts:

``folder``   the run directory made, its lock file not yet opened
``lock``     the lock taken, nothing checked or written yet
``config``   ``config.json`` written, no epoch trained
``epoch``    the first epoch trained, nothing of it saved
``files``    the first epoch's best weights and metrics written, its ``last.safetensors`` not

The kill is injected by wrapping the function that comes just before that moment, so it lands
there every time, on any machine, however fast (a kill by timing lands where it happens to).
"""

import os
import signal
import sys


def die(*_args, **_kwargs):
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> int:
    stage, argv = sys.argv[1], sys.argv[2:]
    from vaekit import checkpoint, cli, runs, trainer

    if stage == "folder":
        real = os

        class _Os:  # the module's os, but opening the lock file kills the process
            def __getattr__(self, name):
                return getattr(real, name)

            def open(self, path, *args, **kwargs):
                if str(path).endswith(runs.LOCK_FILE):
                    die()
                return real.open(path, *args, **kwargs)

        runs.os = _Os()
    elif stage == "lock":
        runs.check_and_load = die
    elif stage == "config":
        save_config = checkpoint.save_config

        def save_then_die(*args, **kwargs):
            save_config(*args, **kwargs)
            die()

        checkpoint.save_config = save_then_die
    elif stage == "epoch":
        trainer.Trainer.checkpoint = die
    elif stage == "files":
        trainer.save_state = die
    else:
        raise SystemExit(f"unknown stage {stage!r}")
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
