"""Seq2Seq Playground: an LSTM encoder-decoder, synthetic tasks and teacher forcing, as a library."""
