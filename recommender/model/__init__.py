"""The trained model (hybrid.py and its components): plain arrays in, arrays out."""

# The model's scorings, by name: what offline evaluation ranks with and what the serving
# strategies content, collaborative and hybrid score through (serving/strategies.py).
STRATEGIES = ("popular", "content", "collaborative", "hybrid")
