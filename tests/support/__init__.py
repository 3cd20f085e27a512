"""Test helpers shared across suites: AWS tables built from template.yaml, pytest fixtures."""
