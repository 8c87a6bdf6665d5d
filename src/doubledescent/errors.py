"""The exceptions that mean "the input is wrong", as opposed to a bug.

The command line (doubledescent.cli) reports a UserError as one line naming the problem and
exits with status 1; any other exception is a bug and keeps its traceback.
"""


class UserError(Exception):
    """An expected problem with what the user gave: a config, a data file, a table, a
    resource such as a device. Its message is one line that says what to fix."""


class ConfigError(UserError):
    """A config problem, phrased as one line that names the offending key."""


class DataError(UserError):
    """A dataset's files are missing, damaged, or hold fewer samples than asked for."""
