"""One module per experiment of the lecture: each computes, saves its results.json and returns a result."""
