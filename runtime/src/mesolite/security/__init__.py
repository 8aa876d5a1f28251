"""Authentication, authorization and TLS, shared by the master, the agent, Marathon and the CLIs.

Every service is open unless its flags close it (as Mesos and Marathon are): these modules only act when a
service's configuration asks for them.
"""
