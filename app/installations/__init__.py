"""Where the GitHub App is installed: installations, their repositories, and their events."""
