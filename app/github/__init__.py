"""Everything Scale Mesh says to and hears from GitHub: the App's API client and webhook views."""
