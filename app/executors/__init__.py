"""Executors run one rendered step: Ansible (and Terraform later) behind one protocol."""
