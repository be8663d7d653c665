"""Where responses come from: a transformers model (`transformers`) or a file someone else made
(`responses_file`)."""
