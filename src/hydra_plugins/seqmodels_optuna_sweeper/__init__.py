"""seqmodels' Optuna sweeper for Hydra (``hydra/sweeper=seqmodels_optuna``, selected by ``hparams_search=optuna``).

hydra-optuna-sweeper's search, plus: a study kept in a storage (resumable, shared by several processes or cluster
jobs), trials pruned by their runs (:class:`seqmodels.callbacks.optuna_pruning.OptunaPruning`), and the best trial's
config and checkpoint written to ``<sweep dir>/best/``.
"""
