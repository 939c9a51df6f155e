"""What users see on GitHub: commit statuses, GitHub Deployments and one PR comment."""
