"""Intake: what a request means, who may send it, and the group commit that makes it durable."""
