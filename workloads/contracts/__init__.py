"""The contracts layer: the facts that the stacks (infra/) and the workloads share.

Table definitions and their meaning, the node-name rule, the hub's topic names and message
schema, the error type. It is the only part of workloads/ that infra/ imports, and it imports
nothing else of workloads/.
"""
