"""Reading a model: state capture, decoding, comparisons of teacher-forcing arms and their plain-language
readings. Pure functions and records over trained models and metrics."""
