"""Payment provider backends (deposits): the interface in ``base``, Square in ``square``."""
