"""Banks: the directory of banks QuickBooks users name (``directory``, from data/banks.yml) and the
probe of a bank's own sign-in site (``site_prober``, through the one outbound-request policy)."""
