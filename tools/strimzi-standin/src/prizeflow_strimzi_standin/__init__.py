"""A stand-in for Strimzi's operators on the rehearsal cluster (tools/devstack/src/prizeflow_devstack/cluster/strimzi.py
says why Strimzi itself cannot be built here). It realises the objects the bundle declares, validated by Strimzi's own
CRDs, the way Strimzi does for them; what it does not do is listed in docs/deploy.md "The rehearsal cluster"."""
