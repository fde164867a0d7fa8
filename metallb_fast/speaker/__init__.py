"""Speaker decisions: election.py (who announces), layer2.py (the `owned` table), announce.py (gratuitous
schedule), status.py (ServiceL2Status + events), explain.py (`plan`'s view); links.py is the only I/O."""
