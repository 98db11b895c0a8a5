"""Payment provider backends (deposits): the interface in ``base``, Square in ``square``, test payments in
``sandbox``; ``payments.services.PAYMENT_BACKENDS`` names them."""
