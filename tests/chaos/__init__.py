"""The fault suite (`make chaos`): scenarios that break processes and peers, then reconcile."""
