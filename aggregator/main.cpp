#include "aggregator/app/app.h"

int main(int argc, char** argv) { return dpa::app::run(argc, argv); }
