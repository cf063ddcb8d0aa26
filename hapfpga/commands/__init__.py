"""Sub-command modules of the ``hapfpga`` CLI (see ``hapfpga.cli.COMMANDS``)."""
