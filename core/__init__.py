"""Everything that computes. Plain Python, torch and numpy; never imports streamlit."""
