"""seqmodels: recurrent sequence models (RNN, LSTM, GRU) for every shape of sequence task."""

__version__ = "0.1.0"
