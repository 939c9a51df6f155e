"""The GitHub App end to end inside the API: signed real payloads in, exact GitHub requests out."""
