"""A one-node Kubernetes built on this machine from the registries it reaches, for the deploy/k8s rehearsal
(docs/deploy.md "The rehearsal cluster"); `prizeflow-cluster` drives it."""
