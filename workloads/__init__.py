"""Workloads the sovereign-node stacks deploy: generator, vcf, federation, warehouse, batch, cli."""
