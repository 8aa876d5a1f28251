"""The Docker containerizer, one module per concern (as Mesos keeps `src/docker/` apart from
`slave/containerizer/docker.cpp`):

- `parameters`: the `docker run` options a task may set in `container.docker.parameters`, and which are allowed;
- `spec`: a DOCKER TaskInfo -> the container's configuration (`container_spec`), its name and labels;
- `session`: the dockerd client that waits out dockerd restarts, and `in_thread` for its blocking calls;
- `logs`: copying the container's stdout and stderr into the sandbox, resumably;
- `containerizer`: `DockerContainerizer`, what the agent and the executor call.
"""
