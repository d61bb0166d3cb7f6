"""The ids every vocabulary reserves, part of the model's contract: the decoder starts from <sos> and ends at <eos>,
sources are left-padded and targets right-padded with <pad>, which is never scored, and <unk> stands for a token
the vocabulary lacks."""

PAD_ID, SOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
