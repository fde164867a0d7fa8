#!/usr/bin/env bash
# Placeholder until the Kubernetes test environment lands: nothing to install yet.
exit 0
