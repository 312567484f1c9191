"""Dataset statistics, plots, the HTML report and the dataset card."""
