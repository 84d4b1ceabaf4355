"""Cluster tier: a real control plane on loopback, the operator, and a node agent."""
