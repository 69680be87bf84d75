"""The command-line programs: thin Hydra mains over the library, one module each, importing no other program.

``seqmodels-train``, ``-eval``, ``-predict``, ``-generate`` and ``-export`` compose their config, call the library
(``seqmodels.train``, ``seqmodels.eval``, ``seqmodels.predict``, ``seqmodels.generate``, ``seqmodels.export``) and
print where the results went; :func:`seqmodels.cli.errors.run` turns a user's mistake into one line.
"""
