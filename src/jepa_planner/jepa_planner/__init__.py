"""Latent MPC (CEM, MPPI, gradient), cost module, critic, memory, distilled policy, configurator and actor nodes."""
