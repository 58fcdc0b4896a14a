"""Kubernetes: the agent's manifests and the flow-run Job template, rendered from settings.

- :mod:`~bootstrap.kubernetes.pod`: labels, security contexts, resources, probes;
- :mod:`~bootstrap.kubernetes.job_template`: the flow-run Job template and which one the
  agent uses;
- :mod:`~bootstrap.kubernetes.manifests`: ServiceAccount, Role, RoleBinding, Deployment;
- :mod:`~bootstrap.kubernetes.kustomize`: the same as a kustomize base.

``prefect-agent-bootstrap kubernetes manifest`` prints the manifests; in the pod,
``prefect-agent-bootstrap run`` renders the Job template from the same settings and starts
``prefect agent kubernetes start --job-template FILE``.
"""
