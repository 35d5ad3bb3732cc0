"""Trains the model the way ``make model`` / the first ``make run`` does, with our quiet start.

    python -m bot.server.train --config config.yml --domain domain.yml --data data --out models --fixed-model-name bankfeed

It calls Rasa's own training (``rasa.api.train``, what ``rasa train`` runs after its checks) with the
start-up warning filters of the servers (``bot.server.quiet_start``) in front of Rasa's, so the first
``make run`` on a fresh machine shows the training's progress, not pages of third-party deprecation
warnings. Two things ``rasa train`` adds are left out on purpose, because they are done elsewhere:

* its data check (``rasa data validate``): ``make test`` runs it (``make validate``) and fails on a
  real problem; inside training it printed one warning per response that our custom actions send
  (they are sent from code, not named in stories), which ``tests/test_domain_consistency.py`` checks;
* its GPU warning about ``TF_DETERMINISTIC_OPS`` (set by the Makefile so that training is reproducible;
  training here runs on the CPU).

Exit status: 0 when a model was written (or was already up to date), Rasa's training code otherwise.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bot.server.train", description="Trains the bank-feed model.")
    parser.add_argument("--config", default="config.yml")
    parser.add_argument("--domain", default="domain.yml")
    parser.add_argument("--data", nargs="+", default=["data"])
    parser.add_argument("--out", default="models")
    parser.add_argument("--fixed-model-name", default=None)
    parser.add_argument("--force", action="store_true", help="train even if nothing changed")
    return parser.parse_args(list(argv))


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from bot.server import quiet_start

    quiet_start.install()  # before TensorFlow and Rasa are imported
    from rasa.utils.common import configure_logging_and_warnings
    from rasa.utils.log_utils import configure_structlog

    configure_logging_and_warnings(logging.INFO, warn_only_once=True, filter_repeated_logs=True)
    configure_structlog(logging.INFO)  # as `rasa train` does: no policy debug lines
    quiet_start.add_filters()  # Rasa's configuration put its own filters in front: ours go first again
    import rasa.api

    result = rasa.api.train(
        domain=args.domain,
        config=args.config,
        training_files=args.data,
        output=args.out,
        force_training=args.force,
        fixed_model_name=args.fixed_model_name,
    )
    if result.code == 0 and result.model:
        print(f"Model written to {result.model}")
    return int(result.code)


if __name__ == "__main__":
    sys.exit(main())
