"""The `kubernetes` step kind: roll back, restart, scale a workload, or evict its Pods,
then wait for its rollout (app.steps.kubernetes.kind)."""
