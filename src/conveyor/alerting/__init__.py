"""Alerting: raise an alert (store it, send it to the sinks) from any layer.

Low in the layers (over the workspace only), so the prediction server, the pipeline, data
checks and monitoring all raise alerts the same way: :func:`conveyor.alerting.service.raise_alert`.
``links`` says where each alert leads, ``sinks`` where it goes. Import the submodules; this
package imports nothing, so importing it stays light.
"""
