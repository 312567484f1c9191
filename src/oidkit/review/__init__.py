"""Human review: a local web app to browse, label and fix records."""
