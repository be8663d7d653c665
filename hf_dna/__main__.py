"""`python -m hf_dna` (also what `accelerate launch -m hf_dna` runs)."""
from .cli import main

if __name__ == "__main__":
    main()
