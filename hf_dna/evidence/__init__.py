"""What a record carries beside the DNA and how two records are compared."""
