"""Access: the role hierarchy and the permission matrix every endpoint is checked against."""
