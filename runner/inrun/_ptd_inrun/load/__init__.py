"""Load mode inside the run's pytest: selected tests looped by concurrent users, every
iteration and every HTTP request measured into mergeable histograms (``histogram``)."""
